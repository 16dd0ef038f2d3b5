"""Prompt building and tokenisation for both upstream prompt styles."""

from __future__ import annotations

import os

import torch
from transformers import Qwen2Tokenizer

from vla_adapter_core.config import PROMPT_STYLES

OPENVLA_TEMPLATE = 'In: What action should the robot take to {instruction}?\nOut:'
QWEN_CHAT_TEMPLATE = (
    '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.'
    '<|im_end|>\n<|im_start|>user\nWhat action should the robot take to {instruction}?'
    '<|im_end|>\n<|im_start|>assistant\n')
BPE_FILES = ('vocab.json', 'merges.txt')
FAST_TOKENIZER_FILE = 'tokenizer.json'


def load_tokenizer(directory: str | os.PathLike) -> Qwen2Tokenizer:
    """Load the Qwen2.5 tokenizer from a local directory, offline.

    The directory needs ``tokenizer.json`` or ``vocab.json`` + ``merges.txt`` (upstream ships the
    latter; transformers 5 saves the former).

    ``AutoTokenizer`` is not used: upstream checkpoints name remote code in their configs, and
    remote code is never executed.

    ``fix_mistral_regex=False``: transformers takes a directory whose ``config.json`` names no
    ``model_type`` / ``transformers_version`` (ours: the PolicyConfig beside the tokenizer) for
    an old Mistral checkpoint and warns that its pre-tokenizer regex is wrong. This is Qwen2's
    own regex, which is right; the flag says so and keeps the tokenisation unchanged.
    """
    has_fast = os.path.isfile(os.path.join(directory, FAST_TOKENIZER_FILE))
    missing = [name for name in BPE_FILES if not os.path.isfile(os.path.join(directory, name))]
    if missing and not has_fast:
        raise FileNotFoundError(f'tokenizer directory {str(directory)!r} lacks '
                                f'{FAST_TOKENIZER_FILE} and {missing}')
    return Qwen2Tokenizer.from_pretrained(str(directory), local_files_only=True,
                                          fix_mistral_regex=False)


def check_instruction_text(instruction: str) -> str:
    """The policy-independent part of the instruction check: a non-empty printable string.

    Returns the stripped text; raises ValueError naming the problem. The token limit is checked
    by :meth:`PromptBuilder.validate_instruction`, which calls this first.
    """
    if not isinstance(instruction, str):
        raise ValueError(f'instruction must be a string, got {type(instruction).__name__}')
    stripped = instruction.strip()
    if not stripped:
        raise ValueError(f'instruction={instruction!r} is empty')
    if not stripped.isprintable():
        raise ValueError(f'instruction={stripped[:80]!r} contains control characters')
    return stripped


class PromptBuilder:
    """Turns instructions into prompts ('openvla' or 'qwen_chat' style) and token ids."""

    def __init__(self, tokenizer, style: str = 'openvla', lowercase: bool = True,
                 max_tokens: int = 256) -> None:
        if style not in PROMPT_STYLES:
            raise ValueError(f'prompt style={style!r}: must be one of {PROMPT_STYLES}')
        self.tokenizer = tokenizer
        self.style = style
        self.lowercase = lowercase
        self.max_tokens = max_tokens
        # No token spans more bytes than the vocabulary's longest entry (byte-level BPE), so a
        # longer text cannot fit max_tokens: it is refused by its length alone, before the
        # tokenizer spends seconds on it.
        self.max_chars = max_tokens * max(len(token) for token in tokenizer.get_vocab())
        pad_id = tokenizer.pad_token_id
        self.pad_token_id = int(pad_id if pad_id is not None else tokenizer.eos_token_id)

    def prompt(self, instruction: str) -> str:
        """The prompt text for one instruction (upstream lower-cases the instruction)."""
        if not isinstance(instruction, str):
            raise ValueError(f'instruction={instruction!r}: must be a string')
        text = instruction
        if self.lowercase:
            text = text.lower()
        template = OPENVLA_TEMPLATE if self.style == 'openvla' else QWEN_CHAT_TEMPLATE
        return template.format(instruction=text)

    def token_ids(self, instruction: str) -> list:
        """Token ids of one prompt, no special tokens added (Qwen2 has no BOS)."""
        ids = self.tokenizer(self.prompt(instruction), add_special_tokens=False)['input_ids']
        if len(ids) < 2:
            raise ValueError(f'instruction={instruction!r}: prompt has fewer than 2 tokens')
        if len(ids) > self.max_tokens:
            raise ValueError(f'instruction {instruction[:60]!r}...: the prompt has {len(ids)} '
                             f"tokens, more than the policy's limit max_prompt_tokens="
                             f'{self.max_tokens}')
        return ids

    def validate_instruction(self, instruction: str) -> str:
        """The one check of an instruction: the stripped text, or ValueError saying why.

        Non-empty, printable (no control characters) and, as a prompt, within ``max_tokens``
        tokens (the error gives the count and the limit).
        """
        if isinstance(instruction, str) and len(instruction) > self.max_chars:
            raise ValueError(f'instruction {instruction[:60]!r}...: {len(instruction)} '
                             f'characters, more than a prompt of max_prompt_tokens='
                             f'{self.max_tokens} tokens can hold ({self.max_chars})')
        stripped = check_instruction_text(instruction)
        self.token_ids(stripped)
        return stripped

    def batch(self, instructions: list) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded ``input_ids`` (B, L) long and ``attention_mask`` (B, L) long."""
        rows = [self.token_ids(instruction) for instruction in instructions]
        length = max(len(row) for row in rows)
        input_ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        for index, row in enumerate(rows):
            input_ids[index, length - len(row):] = torch.tensor(row, dtype=torch.long)
            attention_mask[index, length - len(row):] = 1
        return input_ids, attention_mask
