export interface FormState {
  error?: string;
  /** Non-secret fields as submitted, so a refused form keeps what was typed (React resets forms after an action). */
  values?: Record<string, string>;
}
