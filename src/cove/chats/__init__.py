"""Conversations and messages: repository functions and the turn runner that saves as it streams."""
