"""Dataset card templates (Markdown with a YAML header), installed as ``rnn_zoos.dataset_cards``."""
