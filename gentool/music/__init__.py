"""Looking at, listening to and measuring pieces of music (``symusic.Score`` objects):
``stats`` (statistics for evaluation, copying), ``pianoroll`` (PNG), ``audio`` (WAV through
FluidSynth). Reading, tokenizing and writing MIDI is gentool.data.music."""
