"""Text handling the pillars share, below them all: the prompts per language (`prompts`), where a generated
line ends (`sentences`), and the token encoding and padding that training, scoring and the perplexity filter
use alike (`encoding` and, for a sequence-classification head, `class_encoding`: both import torch, so this
package's __init__ imports none of its modules)."""
