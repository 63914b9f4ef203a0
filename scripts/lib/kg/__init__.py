"""Knowledge-graph access: SPARQL client and queries, LLM client and LLM-mode prompts."""
