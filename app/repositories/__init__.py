"""All SQL, one module per aggregate: keyword-only functions taking the session."""
