"""A model file for llama-server whose every answer is known in advance, written in milliseconds.

A one-layer `qwen3` model with a byte-level `gpt2` vocabulary and Qwen's chat template. Its
weights are chosen, not trained: the embeddings are the identity (token i is the unit vector
e_i, so the width is the vocabulary's size), the layer's attention and feed-forward outputs are
zero (the residual stream stays e_i), and the output matrix is a bigram table: the token after
token i is the one whose row holds a large number in column i. With a gap of LOGIT between the
chosen token and every other, sampling picks it at any temperature.

A bigram sees only the last token, so the chat template ends each prompt with a marker token
that names the situation (a plain question or Claude Code asking to go on after a cut answer,
tools offered, a tool's result just in), and from each marker a chain of tokens of its own spells the whole answer: a thought, then the reply or a
tool call, then <|im_end|>. Chains never share a token (llama.cpp wants every token's text
unique, so a piece whose text is taken is joined to the next), so each stays on its own path.
With `enable_thinking: false` in `chat_template_kwargs` (Qwen's switch) the prompt ends as
Qwen's does, in an empty thought and a newline, and from the newline the model replies without
a thought (a marker after it would be read as the answer's first words).
"""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import gguf
import numpy as np

# What the model says. Tests assert on these.
THOUGHT = "Pondering"
REPLY = "Hello from llama."
AFTER_TOOL = "The tool has answered."
# Claude Code 2.1.332's words when it asks the model to go on after an answer cut by max_tokens: a
# prompt whose last turn holds them is answered with REPLY, tools offered or not.
RESUME = "Output token limit hit"
# The model's training window: llama-server lowers a larger -c to it, so it is larger than any test's -c.
TRAINED_CONTEXT = 262144
LOGIT = 40.0

# Qwen's special tokens: the chat frame is control tokens, the thinking and tool markup user-defined
# (plain text in the output, one token in the prompt), as in Qwen3's own tokenizer.
CONTROL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
USER_DEFINED = ("<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<tools>")
# The template's situation markers.
MARKERS = ("<|reply|>", "<|call|>", "<|after_tool|>")
# The last token of a prompt with thinking switched off: the newline after Qwen's empty thought.
NO_THOUGHT = "\n"

# Qwen3-0.6B's template (llama.cpp's models/templates/Qwen-Qwen3-0.6B.jinja), ending in a marker.
CHAT_TEMPLATE = """{%- if tools %}
{{- '<|im_start|>system\\n' }}{%- if messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}
{{- "# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with \
function signatures within <tools></tools> XML tags:\\n<tools>" }}
{%- for tool in tools %}{{- "\\n" }}{{- tool | tojson }}{%- endfor %}
{{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within \
<tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\
\\n</tool_call><|im_end|>\\n" }}
{%- else %}
{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}{%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
{%- set index = (messages|length - 1) - loop.index0 %}
{%- if ns.multi_step_tool and message.role == "user" and not(message.content.startswith('<tool_response>') \
and message.content.endswith('</tool_response>')) %}
{%- set ns.multi_step_tool = false %}{%- set ns.last_query_index = index %}
{%- endif %}
{%- endfor %}
{%- for message in messages %}
{%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
{%- elif message.role == "assistant" %}
{%- set content = message.content %}{%- set reasoning_content = '' %}
{%- if message.reasoning_content is defined and message.reasoning_content is not none %}
{%- set reasoning_content = message.reasoning_content %}
{%- else %}
{%- if '</think>' in message.content %}
{%- set content = message.content.split('</think>')[-1].lstrip('\\n') %}
{%- set reasoning_content = message.content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}
{%- endif %}
{%- endif %}
{%- if loop.index0 > ns.last_query_index %}
{%- if loop.last or (not loop.last and reasoning_content) %}
{{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' \
+ content.lstrip('\\n') }}
{%- else %}{{- '<|im_start|>' + message.role + '\\n' + content }}{%- endif %}
{%- else %}{{- '<|im_start|>' + message.role + '\\n' + content }}{%- endif %}
{%- if message.tool_calls %}
{%- for tool_call in message.tool_calls %}
{%- if (loop.first and content) or (not loop.first) %}{{- '\\n' }}{%- endif %}
{%- if tool_call.function %}{%- set tool_call = tool_call.function %}{%- endif %}
{{- '<tool_call>\\n{"name": "' }}{{- tool_call.name }}{{- '", "arguments": ' }}
{%- if tool_call.arguments is string %}{{- tool_call.arguments }}{%- else %}{{- tool_call.arguments | tojson }}{%- endif %}
{{- '}\\n</tool_call>' }}
{%- endfor %}
{%- endif %}
{{- '<|im_end|>\\n' }}
{%- elif message.role == "tool" %}
{%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}{{- '<|im_start|>user' }}{%- endif %}
{{- '\\n<tool_response>\\n' }}{{- message.content }}{{- '\\n</tool_response>' }}
{%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}{{- '<|im_end|>\\n' }}{%- endif %}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|im_start|>assistant\\n' }}
{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}
{%- elif messages[-1].role == 'tool' %}{{- '<|after_tool|>' }}
{%- elif tools and 'RESUME' not in messages[-1].content %}{{- '<|call|>' }}
{%- else %}{{- '<|reply|>' }}{%- endif %}
{%- endif %}""".replace("'RESUME'", repr(RESUME))


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-level alphabet: each byte as a printable character (as in its encoder.py)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


BYTE_CHARS = _bytes_to_unicode()


def _encode(text: str) -> str:
    """A token's text in the vocabulary: its UTF-8 bytes in GPT-2's alphabet."""
    return "".join(BYTE_CHARS[b] for b in text.encode())


def _pieces(text: str) -> list[str]:
    """Words with their leading whitespace: one token each."""
    return re.findall(r"\s*\S+|\s+", text)


def _unique(pieces: list[str], taken: set[str]) -> list[str]:
    """The pieces as vocabulary texts none of which is in `taken`: a piece whose text is taken
    is joined to the next one (the last, to the one before)."""
    unique: list[str] = []
    current = ""
    for piece in pieces:
        current += _encode(piece)
        if current not in taken:
            unique.append(current)
            taken.add(current)
            current = ""
    while current:
        previous = unique.pop()
        taken.discard(previous)
        current = previous + current
        if current not in taken:
            unique.append(current)
            taken.add(current)
            current = ""
    return unique


@dataclass
class ToolCall:
    """The call the model makes when tools are offered: the name must be one offered, the
    arguments valid for its schema (llama-server's grammar holds the model to them)."""

    name: str
    arguments: dict = field(default_factory=dict)

    def pieces(self) -> list[str]:
        head = ["<tool_call>", "\n", '{"name": "', self.name, '", "arguments": ']
        return head + _pieces(json.dumps(self.arguments)) + ["}", "\n", "</tool_call>"]


def chains(tool_call: ToolCall) -> dict[str, list[str]]:
    """A prompt's last token -> the text pieces the model answers with after it."""
    thought = ["<think>", "\n", THOUGHT, "\n", "</think>", "\n\n"]
    return {
        "<|reply|>": thought + _pieces(REPLY),
        "<|call|>": thought + tool_call.pieces(),
        "<|after_tool|>": thought + _pieces(AFTER_TOOL),
        _encode(NO_THOUGHT): _pieces(REPLY),
    }


def write_model(path: Path, tool_call: ToolCall) -> Path:
    """Write the model to `path` and return it."""
    tokens = [BYTE_CHARS[b] for b in range(256)]
    types = [gguf.TokenType.NORMAL] * 256
    # A BPE vocabulary needs merges: one, whose result is in the vocabulary.
    tokens.append(_encode(" t"))
    types.append(gguf.TokenType.NORMAL)
    for text in CONTROL + MARKERS:
        tokens.append(text)
        types.append(gguf.TokenType.CONTROL)
    for text in USER_DEFINED:
        tokens.append(text)
        types.append(gguf.TokenType.USER_DEFINED)
    end = tokens.index("<|im_end|>")
    transitions: list[tuple[int, int]] = []
    taken = set(tokens)
    for marker, pieces in chains(tool_call).items():
        previous = tokens.index(marker)
        for piece in _unique(pieces, taken):
            tokens.append(piece)
            types.append(gguf.TokenType.NORMAL)
            transitions.append((previous, len(tokens) - 1))
            previous = len(tokens) - 1
        transitions.append((previous, end))
    n_vocab = len(tokens)
    head_dim, n_ff = 16, 16

    # Every token not in a chain is followed by <|im_end|>: whatever else happens ends the answer.
    bigram = np.zeros((n_vocab, n_vocab), dtype=np.float32)  # [next, current]
    bigram[end, :] = LOGIT
    for current, following in transitions:
        bigram[end, current] = 0.0
        bigram[following, current] = LOGIT

    writer = gguf.GGUFWriter(str(path), "qwen3")
    writer.add_name("stabilizer-bigram")
    writer.add_context_length(TRAINED_CONTEXT)
    writer.add_embedding_length(n_vocab)
    writer.add_block_count(1)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(1)
    writer.add_head_count_kv(1)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(1_000_000.0)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([f"{_encode(' ')} t"])
    writer.add_bos_token_id(tokens.index("<|endoftext|>"))
    writer.add_eos_token_id(end)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)

    def zeros(*shape: int) -> np.ndarray:
        return np.zeros(shape, dtype=np.float32)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    writer.add_tensor("token_embd.weight", np.eye(n_vocab, dtype=np.float32))
    writer.add_tensor("blk.0.attn_norm.weight", ones(n_vocab))
    writer.add_tensor("blk.0.attn_q.weight", zeros(head_dim, n_vocab))
    writer.add_tensor("blk.0.attn_k.weight", zeros(head_dim, n_vocab))
    writer.add_tensor("blk.0.attn_v.weight", zeros(head_dim, n_vocab))
    writer.add_tensor("blk.0.attn_q_norm.weight", ones(head_dim))
    writer.add_tensor("blk.0.attn_k_norm.weight", ones(head_dim))
    writer.add_tensor("blk.0.attn_output.weight", zeros(n_vocab, head_dim))
    writer.add_tensor("blk.0.ffn_norm.weight", ones(n_vocab))
    writer.add_tensor("blk.0.ffn_gate.weight", zeros(n_ff, n_vocab))
    writer.add_tensor("blk.0.ffn_up.weight", zeros(n_ff, n_vocab))
    writer.add_tensor("blk.0.ffn_down.weight", zeros(n_vocab, n_ff))
    # The final RMS norm scales the one-hot e_i by sqrt(width); this weight undoes it.
    writer.add_tensor("output_norm.weight", np.full(n_vocab, 1 / np.sqrt(n_vocab), dtype=np.float32))
    writer.add_tensor("output.weight", bigram)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
