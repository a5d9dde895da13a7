"""Inference engines: the Engine protocol, the llama.cpp engine, the scheduler and a scripted fake.

Nothing in this package knows about HTTP or storage.
"""
