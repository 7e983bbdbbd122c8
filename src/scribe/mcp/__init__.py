"""The agents' door: an MCP server through which AI agents log their work, read files
with provenance, track bug and security cases and query the history.

Tool logic lives in plain modules that know nothing of the protocol (``reader``,
``sentinel``, ``cases``, ``projects``, ``docs``, ``query``); ``server`` validates
each call's execution context, gates tools by mode and exposes them over stdio or
streamable HTTP.
"""
