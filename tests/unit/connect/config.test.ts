import { describe, expect, it } from "vitest";
import { ConnectConfigError, parseConnectConfig } from "@/lib/connect/config";

const KEY = `cnc_0123456789ab_${"A".repeat(43)}`;

function problems(text: string, env: Record<string, string> = {}): string[] {
  try {
    parseConnectConfig(text, "connect.yaml", env);
  } catch (error) {
    if (error instanceof ConnectConfigError) return error.problems.map((p) => `${p.line}:${p.column} ${p.message}`);
    throw error;
  }
  return [];
}

describe("the connector's configuration file", () => {
  it("reads hub, key (from the environment), database, capture and tables with renamed columns", () => {
    const config = parseConnectConfig(
      `hub: http://localhost:3000/\nkey: \${CRM_KEY}\ndatabase: postgres://crm@db/crm\ncollections:\n  customers:\n    table: sales.customers\n    id: customer_id\n    columns: {email: email_address}\n  orders: {table: orders}\n`,
      "/etc/concord/connect.yaml",
      { CRM_KEY: KEY },
    );
    expect(config).toEqual({
      file: "/etc/concord/connect.yaml",
      hub: "http://localhost:3000",
      key: KEY,
      database: { engine: "postgres", url: "postgres://crm@db/crm" },
      capture: "scan",
      collections: [
        { collection: "customers", schema: "sales", table: "customers", idColumn: "customer_id", renamed: { email: "email_address" } },
        { collection: "orders", schema: null, table: "orders", idColumn: "id", renamed: {} },
      ],
    });
    expect(parseConnectConfig(`hub: http://h\nkey: ${KEY}\ndatabase: sqlite:./shop.db\ncollections: {orders: {table: orders}}\n`, "c.yaml").database).toEqual({
      engine: "sqlite",
      path: "./shop.db",
    });
  });

  it("names every problem with its line and column, at once", () => {
    expect(
      problems(`hub: ftp://x\nkey: nope\ndatabase: mysql://db\ncapture: sometimes\ncollections:\n  Customers: {table: "a b"}\n  orders: {table: orders, extra: 1}\n`),
    ).toEqual([
      "1:6 hub must be the hub's http:// or https:// address",
      "2:6 key does not look like a Concord API key (cnc_<12 hex>_<43 characters>)",
      "3:11 database must be a postgres:// URL or sqlite:FILE (e.g. sqlite:./shop.db)",
      '4:10 capture Invalid option: expected one of "scan"|"trigger"',
      "6:22 collections.Customers.table is not a table name: `table` or `schema.table`, each a plain SQL name (letters, digits, _ and $)",
      '7:11 collections.orders Unrecognized key: "extra"',
      "6:14 collections.Customers is not a collection name (a lowercase letter, then a-z, 0-9 or _)",
    ]);
    expect(problems(`hub: http://h\nkey: ${KEY}\ndatabase: sqlite:x.db\ncollections:\n  Customers: {table: t}\n`)).toEqual([
      "5:14 collections.Customers is not a collection name (a lowercase letter, then a-z, 0-9 or _)",
    ]);
  });

  it("refuses an unset environment variable, YAML errors, a field on the id column and two fields on one column", () => {
    expect(problems(`hub: http://h\nkey: \${MISSING}\ndatabase: sqlite:x.db\ncollections: {c: {table: t}}\n`)).toEqual(["2:6 ${MISSING} is not set in the environment"]);
    expect(problems(`hub: [unclosed\n`)[0]).toMatch(/^\d+:\d+ \S/);
    expect(problems(`hub: http://h\nhub: http://i\nkey: ${KEY}\n`)[0]).toMatch(/^2:1 .*unique/i);
    expect(
      problems(`hub: http://h\nkey: ${KEY}\ndatabase: sqlite:x.db\ncollections:\n  c:\n    table: t\n    columns: {a: id, b: col, c: col}\n`),
    ).toEqual(['7:18 collections.c.columns.a: column "id" is the id column; the record id is not a field', '7:33 collections.c.columns: fields "b" and "c" both name column "col"']);
  });
});
