"""The batched builder of new zoos: the command (:mod:`.command`), the build of one folder (:mod:`.build`,
:mod:`.build_folder`), the chunks workers claim (:mod:`.claims`) and train (:mod:`.chunk_trainer`), and the engines
(local, ``--worker I/N``, Ray in :mod:`.ray_engine`). Imports common, lstm, format, zoos and hub; nothing imports it back."""
