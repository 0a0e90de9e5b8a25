"""Zoos as folders and Hub repos: where a zoo comes from (:mod:`.sources`), loading and batching rows (:mod:`.loading`),
writing the layout, card and plots, verifying and publishing. Imports the wings below it: common, lstm, format, zoos."""
