"""The paper's experiments on zoos: emulation pretraining (:mod:`.pretrain`), downstream property prediction
(:mod:`.downstream`), the one-command reproduction and its report (:mod:`.reproduce`, :mod:`.report`). The top wing: it
imports any wing below it, and nothing but the facade and the command line import it."""
