"""Text handling the pillars share, below them all: the prompts per language (`prompts`: torch-free) and the
token encoding and padding that training, scoring and the perplexity filter use alike (`encoding` and, for a
sequence-classification head, `class_encoding`: both import torch, so this package imports neither)."""
