"""Counting tokens before paying for them: with the model's tokenizer where one loads offline, else a stated
approximation (about 4 characters a token, OpenAI's rule of thumb for English text).

Either way a chat message costs a few tokens of formatting beyond its text (role markers); servers count
those in `prompt_tokens`, so the estimate does too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from exgrpo.errors import ConfigError

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


class TokenCounter:
    def __init__(self, tokenizer: str | None = None) -> None:
        self._tokenizer = None
        self.method = f"about {CHARS_PER_TOKEN} characters a token"
        if tokenizer is not None:
            from transformers import AutoTokenizer

            try:  # a dry run must not download: the tokenizer is a folder or already in the local cache
                self._tokenizer = AutoTokenizer.from_pretrained(tokenizer, local_files_only=True)
            except (OSError, ValueError) as error:
                raise ConfigError(f"estimate.tokenizer: cannot load {tokenizer!r} offline ({error})") from None
            self.method = f"the tokenizer {tokenizer}"

    def text(self, text: str) -> int:
        if self._tokenizer is not None:
            return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])
        return math.ceil(len(text) / CHARS_PER_TOKEN)

    def messages(self, messages: Iterable[Mapping[str, str]]) -> int:
        return sum(self.text(message["content"]) + TOKENS_PER_MESSAGE for message in messages)
