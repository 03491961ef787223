"""unimm: unified multimodal LLMs on discrete image tokenizers (SemHiTok and its peers)."""
__version__ = '0.1.0'
