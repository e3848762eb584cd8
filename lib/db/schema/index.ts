export * from "./records";
export * from "./conflicts";
export * from "./governance";
export * from "./bundles";
