CREATE TABLE "sign_in_throttle" (
	"kind" text NOT NULL,
	"username" text NOT NULL,
	"address" text NOT NULL,
	"window_started_at" timestamp with time zone NOT NULL,
	"attempts" integer NOT NULL,
	CONSTRAINT "sign_in_throttle_username_address_kind_pk" PRIMARY KEY("username","address","kind")
);
--> statement-breakpoint
CREATE INDEX "sign_in_throttle_window_idx" ON "sign_in_throttle" USING btree ("window_started_at");