"""Knowledge-graph access: SPARQL client and queries, the entity selection (dump tables, graph,
selections, natural types, entities table), LLM client and LLM-mode prompts, WordNet living things."""
