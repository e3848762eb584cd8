CREATE SEQUENCE "public"."change_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1;--> statement-breakpoint
CREATE TABLE "push_receipts" (
	"system" text NOT NULL,
	"change_id" text NOT NULL,
	"collection" text NOT NULL,
	"record_id" text COLLATE "C" NOT NULL,
	"result" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "push_receipts_system_change_id_pk" PRIMARY KEY("system","change_id")
);
--> statement-breakpoint
CREATE TABLE "record_history" (
	"collection" text NOT NULL,
	"id" text COLLATE "C" NOT NULL,
	"version" integer NOT NULL,
	"data" jsonb NOT NULL,
	"digest" text NOT NULL,
	"deleted" boolean DEFAULT false NOT NULL,
	"seq" bigint NOT NULL,
	"origin" text NOT NULL,
	"change_id" text,
	"written_by" text NOT NULL,
	"written_at" timestamp with time zone DEFAULT now() NOT NULL,
	"modified_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "record_history_collection_id_version_pk" PRIMARY KEY("collection","id","version")
);
--> statement-breakpoint
CREATE TABLE "records" (
	"collection" text NOT NULL,
	"id" text COLLATE "C" NOT NULL,
	"data" jsonb NOT NULL,
	"version" integer NOT NULL,
	"digest" text NOT NULL,
	"deleted" boolean DEFAULT false NOT NULL,
	"seq" bigint NOT NULL,
	"updated_by" text NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"modified_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "records_collection_id_pk" PRIMARY KEY("collection","id")
);
--> statement-breakpoint
CREATE TABLE "conflicts" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"collection" text NOT NULL,
	"record_id" text COLLATE "C" NOT NULL,
	"client_system" text NOT NULL,
	"server_system" text NOT NULL,
	"change_id" text NOT NULL,
	"base_version" integer,
	"base_data" jsonb,
	"server_version" integer NOT NULL,
	"server_data" jsonb,
	"server_deleted" boolean DEFAULT false NOT NULL,
	"client_change" jsonb NOT NULL,
	"client_data" jsonb,
	"strategy" text NOT NULL,
	"outcome" text NOT NULL,
	"details" jsonb,
	"result_version" integer,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"resolution" text,
	"resolved_by" text,
	"resolved_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "api_keys" (
	"prefix" text PRIMARY KEY NOT NULL,
	"system" text NOT NULL,
	"key_hash" text NOT NULL,
	"created_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"revoked_at" timestamp with time zone,
	"last_used_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "audit_log" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"actor" text NOT NULL,
	"action" text NOT NULL,
	"target" text,
	"details" jsonb
);
--> statement-breakpoint
CREATE TABLE "operator_sessions" (
	"token_hash" text PRIMARY KEY NOT NULL,
	"operator_id" integer NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "operators" (
	"id" serial PRIMARY KEY NOT NULL,
	"username" text NOT NULL,
	"password_hash" text NOT NULL,
	"role" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"disabled_at" timestamp with time zone,
	CONSTRAINT "operators_username_unique" UNIQUE("username")
);
--> statement-breakpoint
CREATE TABLE "policy_versions" (
	"version" integer PRIMARY KEY NOT NULL,
	"yaml" text NOT NULL,
	"comment" text,
	"source" text NOT NULL,
	"rolled_back_from" integer,
	"activated_by" text NOT NULL,
	"activated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "settings" (
	"key" text PRIMARY KEY NOT NULL,
	"value" jsonb NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "systems" (
	"name" text PRIMARY KEY NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_seen_at" timestamp with time zone,
	"last_push_at" timestamp with time zone,
	"last_pull_at" timestamp with time zone,
	"last_error" text,
	"last_error_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "operator_sessions" ADD CONSTRAINT "operator_sessions_operator_id_operators_id_fk" FOREIGN KEY ("operator_id") REFERENCES "public"."operators"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "records_collection_seq_idx" ON "records" USING btree ("collection","seq");--> statement-breakpoint
CREATE INDEX "conflicts_outcome_id_idx" ON "conflicts" USING btree ("outcome","id");--> statement-breakpoint
CREATE INDEX "conflicts_collection_id_idx" ON "conflicts" USING btree ("collection","id");--> statement-breakpoint
CREATE INDEX "conflicts_record_idx" ON "conflicts" USING btree ("collection","record_id","id");--> statement-breakpoint
CREATE INDEX "conflicts_client_system_id_idx" ON "conflicts" USING btree ("client_system","id");--> statement-breakpoint
CREATE INDEX "conflicts_created_at_idx" ON "conflicts" USING btree ("created_at");--> statement-breakpoint
CREATE INDEX "api_keys_system_idx" ON "api_keys" USING btree ("system");--> statement-breakpoint
CREATE INDEX "audit_log_at_idx" ON "audit_log" USING btree ("at");--> statement-breakpoint
CREATE INDEX "audit_log_action_idx" ON "audit_log" USING btree ("action","id");--> statement-breakpoint
CREATE INDEX "operator_sessions_operator_idx" ON "operator_sessions" USING btree ("operator_id");