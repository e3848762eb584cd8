CREATE TABLE "activity" (
	"bucket" timestamp with time zone NOT NULL,
	"system" text NOT NULL,
	"kind" text NOT NULL,
	"count" bigint NOT NULL,
	CONSTRAINT "activity_bucket_system_kind_pk" PRIMARY KEY("bucket","system","kind")
);
--> statement-breakpoint
CREATE TABLE "system_cursors" (
	"system" text NOT NULL,
	"collection" text NOT NULL,
	"seq" bigint NOT NULL,
	"at" timestamp with time zone NOT NULL,
	CONSTRAINT "system_cursors_system_collection_pk" PRIMARY KEY("system","collection")
);
--> statement-breakpoint
CREATE INDEX "records_data_path_idx" ON "records" USING gin ("data" jsonb_path_ops);--> statement-breakpoint
CREATE INDEX "conflicts_server_system_id_idx" ON "conflicts" USING btree ("server_system","id");--> statement-breakpoint
CREATE INDEX "conflicts_strategy_id_idx" ON "conflicts" USING btree ("strategy","id");--> statement-breakpoint
CREATE INDEX "audit_log_actor_idx" ON "audit_log" USING btree ("actor","id");--> statement-breakpoint
CREATE INDEX "audit_log_action_target_at_idx" ON "audit_log" USING btree ("action","target","at");