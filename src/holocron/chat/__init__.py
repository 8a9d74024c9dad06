"""The chat half of the model layer: one contract (:mod:`holocron.chat.base`), three providers (the in-process
model, Ollama, OpenAI-compatible servers) and the chat routes of ``holocron serve-models``."""
