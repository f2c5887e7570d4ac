"""Answering: reading the evidence and deciding. The evidence model (judge), the confidence gate,
sentence choice for extractive answers, generation through LLM providers, the verifier of
generated sentences, and prompt-injection screening."""
