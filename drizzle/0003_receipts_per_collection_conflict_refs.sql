ALTER TABLE "push_receipts" DROP CONSTRAINT "push_receipts_system_change_id_pk";--> statement-breakpoint
ALTER TABLE "push_receipts" ADD CONSTRAINT "push_receipts_system_collection_change_id_pk" PRIMARY KEY("system","collection","change_id");--> statement-breakpoint
ALTER TABLE "push_receipts" ADD COLUMN "change_digest" text;--> statement-breakpoint
ALTER TABLE "conflicts" ADD COLUMN "client_ref" bigint;--> statement-breakpoint
ALTER TABLE "systems" ADD COLUMN "conflict_refs" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "conflicts_client_ref_idx" ON "conflicts" USING btree ("client_system","client_ref");--> statement-breakpoint
-- Conflicts logged before this migration get their system's own numbers, in the order they were logged.
UPDATE "conflicts" AS c SET "client_ref" = n.ref
FROM (SELECT "id", row_number() OVER (PARTITION BY "client_system" ORDER BY "id") AS ref FROM "conflicts") AS n
WHERE c."id" = n."id";--> statement-breakpoint
INSERT INTO "systems" ("name", "conflict_refs")
SELECT "client_system", max("client_ref") FROM "conflicts" GROUP BY "client_system"
ON CONFLICT ("name") DO UPDATE SET "conflict_refs" = excluded."conflict_refs";
