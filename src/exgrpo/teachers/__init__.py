"""Teachers: OpenAI-compatible APIs, local Hugging Face models, stored rationales; one durable cache."""
