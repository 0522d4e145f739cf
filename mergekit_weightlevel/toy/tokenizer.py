"""A character-level tokenizer, saved so that ``transformers.AutoTokenizer`` loads it.

Every character of the toy world is one token; a ``tokenizers`` WordLevel model over
single characters, with a pre-tokenizer that isolates each character and a decoder that
fuses them back without spaces. Saved as ``tokenizer.json`` + ``tokenizer_config.json``.
"""

from __future__ import annotations

from pathlib import Path

from mergekit_weightlevel.demo.tiny_models import SPECIAL_TOKENS, word_level_tokenizer

SPECIALS = tuple(SPECIAL_TOKENS)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)

#: Every character the toy tasks write (digits, operators, the Q/A and reasoning markers).
CHARACTERS = "0123456789+-*%=?:.,[]QA "


def vocabulary() -> dict[str, int]:
    return {token: index for index, token in enumerate((*SPECIALS, *CHARACTERS))}


def vocab_size() -> int:
    return len(SPECIALS) + len(CHARACTERS)


def build_tokenizer():
    """A ``PreTrainedTokenizerFast`` with one token per character that starts every text with
    BOS, as the models were trained (and as Llama's tokenizer does), so that lm-eval and
    ``transformers`` feed them what training did; no EOS is added."""
    from tokenizers import Regex, decoders, pre_tokenizers, processors

    tokenizer = word_level_tokenizer(
        vocabulary(),
        # Every character is its own piece, spaces included (they carry no meaning to split on).
        pre_tokenizers.Split(Regex("."), behavior="isolated"),
        decoder=decoders.Fuse(),
        padding_side="left",
        model_max_length=64,
    )
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{SPECIALS[BOS_ID]} $A", special_tokens=[(SPECIALS[BOS_ID], BOS_ID)]
    )
    return tokenizer


def save_tokenizer(folder: str | Path) -> Path:
    folder = Path(folder)
    build_tokenizer().save_pretrained(folder)
    return folder


class CharCodec:
    """Fast encode/decode for training and evaluation (same ids as the saved tokenizer)."""

    def __init__(self) -> None:
        self.ids = vocabulary()
        self.chars = {index: token for token, index in self.ids.items()}

    def encode(self, text: str) -> list[int]:
        return [self.ids.get(char, UNK_ID) for char in text]

    def decode(self, ids: list[int]) -> str:
        """Characters up to the first EOS; pads and other specials dropped."""
        out = []
        for index in ids:
            if index == EOS_ID:
                break
            if index >= len(SPECIALS):
                out.append(self.chars[index])
        return "".join(out)
