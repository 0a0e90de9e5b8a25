"""Task definitions: what the RNNs of each zoo are trained on and how their behaviour is scored."""
