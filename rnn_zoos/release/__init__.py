"""The paper's original release (NumPy files): checking and reading it (:mod:`.reader`) and importing it as a zoo
folder (:mod:`.importer`). Imports common, lstm, format, zoos and hub."""
