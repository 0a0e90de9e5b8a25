"""The on-disk format of a zoo: the ``meta/info.json`` record (:mod:`.info`), the weights blob of a row (:mod:`.blob`) and
the split of tasks (:mod:`.splits`). Imports only :mod:`rnn_zoos.common` and :mod:`rnn_zoos.lstm`; it checks a record
against the zoo kinds its caller passes, so it never imports them."""

from .info import FORMAT_VERSION, ZooInfo

__all__ = ["FORMAT_VERSION", "ZooInfo"]
