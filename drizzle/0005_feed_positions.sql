-- Feed positions (xid, seq): writers of one collection no longer take a collection lock;
-- the delta feed orders by position and serves only what is below the visibility horizon.
-- Existing rows get xid 0, so their order stays the order of seq.
ALTER TABLE "record_history" ADD COLUMN "xid" "xid8" DEFAULT '0'::xid8 NOT NULL;--> statement-breakpoint
ALTER TABLE "records" ADD COLUMN "xid" "xid8" DEFAULT '0'::xid8 NOT NULL;--> statement-breakpoint
CREATE INDEX "record_history_position_idx" ON "record_history" USING btree ("collection","xid","seq");--> statement-breakpoint
CREATE INDEX "records_collection_position_idx" ON "records" USING btree ("collection","xid","seq");