"""CONFIDENTIAL real-vs-synthetic fidelity: computed on private data, never DP, never public."""
