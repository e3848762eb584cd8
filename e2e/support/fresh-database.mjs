// Creates a fresh, empty database for one e2e run on the Postgres server of the
// URL given as argument, and prints its URL. Like the PGlite folders, every run
// starts from nothing: leftovers of earlier runs (policies, keys, an older
// migration history) cannot change the outcome. Databases of runs older than
// half an hour are dropped first.
//   node e2e/support/fresh-database.mjs postgres://user@host:5432/any
import postgres from "postgres";

const serverUrl = process.argv[2];
if (!serverUrl) {
  console.error("usage: node e2e/support/fresh-database.mjs <postgres url>");
  process.exit(2);
}

const PREFIX = "concord_e2e_";
const sql = postgres(serverUrl, { max: 1, onnotice: () => undefined, connect_timeout: 10 });
try {
  const cutoff = Date.now() - 30 * 60_000;
  const old = await sql`select datname from pg_database where datname ~ ${`^${PREFIX}[0-9]+$`}`;
  for (const { datname } of old) {
    if (Number(datname.slice(PREFIX.length)) < cutoff) {
      await sql.unsafe(`drop database if exists "${datname}" with (force)`);
    }
  }
  const name = `${PREFIX}${Date.now()}`;
  await sql.unsafe(`create database "${name}"`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  process.stdout.write(`${url.toString()}\n`);
} catch (error) {
  console.error(`Could not create a database for the e2e run: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
} finally {
  await sql.end({ timeout: 5 });
}
