CREATE TABLE "bundle_receipts" (
	"system" text NOT NULL,
	"bundle_id" uuid NOT NULL,
	"applied_at" timestamp with time zone DEFAULT now() NOT NULL,
	"applied_by" text NOT NULL,
	"request_checksum" text NOT NULL,
	"response_checksum" text NOT NULL,
	"response" jsonb NOT NULL,
	CONSTRAINT "bundle_receipts_system_bundle_id_pk" PRIMARY KEY("system","bundle_id")
);
