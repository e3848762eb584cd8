import { readdirSync, statSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { CONSOLE_SECTIONS, safeNextPath } from "@/lib/console/next-path";

describe("where sign-in goes next", () => {
  it.each([
    ["/%09/evil.example", "a percent-encoded tab"],
    ["/\t/evil.example", "a raw tab (browsers drop it: //evil.example)"],
    ["/\n/evil.example", "a raw newline"],
    ["/\r\n/evil.example", "CR LF"],
    ["//evil.example", "a protocol-relative URL"],
    ["///evil.example", "three slashes"],
    ["/\\evil.example", "a backslash (read as a slash)"],
    ["\\\\evil.example", "two backslashes"],
    ["/\\/evil.example", "slash, backslash, slash"],
    ["/.//evil.example", "a dot segment that leaves //evil.example"],
    ["/..//evil.example", "a dot-dot segment that leaves //evil.example"],
    ["/%2e%2e//evil.example", "an encoded dot-dot segment"],
    ["https://evil.example", "an absolute URL"],
    ["https://evil.example/records", "an absolute URL with a console path"],
    ["http://console.invalid/records", "an absolute URL that happens to name the base"],
    ["javascript:alert(1)", "javascript:"],
    ["JaVaScRiPt:alert(1)", "javascript: in mixed case"],
    [" javascript:alert(1)", "javascript: after a space"],
    ["data:text/html,<script>alert(1)</script>", "data:"],
    ["evil.example", "a bare host"],
    ["/@evil.example", "an at sign"],
    ["/api/admin/policy", "an API route"],
    ["/_next/static/chunks/x.js", "a framework asset"],
    ["/sign-in", "the sign-in page itself"],
    ["/unknown-page", "a path outside the console"],
    ["", "nothing"],
    ["/" + "a".repeat(3000), "something absurdly long"],
  ])("refuses %j (%s) and goes to the overview", (next) => {
    expect(safeNextPath(next)).toBe("/");
  });

  it.each([
    ["/", "/"],
    ["/records", "/records"],
    ["/records/customers/c1?x=1#top", "/records/customers/c1?x=1#top"],
    ["/conflicts?status=pending&system=crm", "/conflicts?status=pending&system=crm"],
    ["/policies/versions/3", "/policies/versions/3"],
    ["/records/../audit", "/audit"],
    ["/records/a b", "/records/a%20b"],
  ])("keeps the console page %j as %j", (next, expected) => {
    expect(safeNextPath(next)).toBe(expected);
  });

  it("refuses null and undefined", () => {
    expect(safeNextPath(undefined)).toBe("/");
    expect(safeNextPath(null)).toBe("/");
  });

  it("knows every section of the console", () => {
    const dir = path.join(process.cwd(), "app", "(console)");
    const sections = readdirSync(dir).filter((name) => statSync(path.join(dir, name)).isDirectory());
    expect([...sections, ""].sort()).toEqual([...CONSOLE_SECTIONS].sort());
  });
});
