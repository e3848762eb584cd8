import { splitInvisible } from "@/lib/console/invisible-chars";

/**
 * Text from outside — record ids, collection and system names, JSON values —
 * shown so that nothing in it hides: each invisible, direction-changing or
 * control character becomes a highlighted `⟨U+202E⟩` marker (its name in the
 * title) instead of acting on the text around it, and the whole is isolated
 * from the surrounding text's direction (`<bdi>`), so `\u202Egnp.exe` reads
 * `⟨U+202E⟩gnp.exe`, never `exe.png`.
 */
export function VisibleText({ text, className, layout }: { text: string; className?: string; /** Keep tabs and line breaks (formatted JSON). */ layout?: boolean }) {
  const parts = splitInvisible(text, { layout });
  const marked = parts.some((p) => p.kind === "invisible");
  return (
    <bdi className={className} data-invisible={marked ? "true" : undefined}>
      {parts.map((part, i) =>
        part.kind === "text" ? (
          part.text
        ) : (
          <span
            key={i}
            data-testid="invisible-char"
            title={`${part.code} ${part.name}: an invisible character in this text`}
            className="mx-px inline-block rounded-sm bg-amber-200 px-0.5 font-mono text-[0.85em] font-normal leading-tight text-amber-950 ring-1 ring-inset ring-amber-500"
          >
            ⟨{part.code}⟩
          </span>
        ),
      )}
    </bdi>
  );
}
