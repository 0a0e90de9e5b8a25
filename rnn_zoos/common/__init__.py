"""The ground floor: errors, atomic file writing and locks, command-line parsing, result files, figures, Ray tasks and the
version. Imports nothing else of rnn_zoos."""
