"""The words of a question that say nothing about what it asks: shared by keyword search and snippets."""

from __future__ import annotations

# English function words (the usual IR list, plus question words); they match everything and say nothing.
_STOPWORD_TEXT = """
a about above after again against all am an and any are aren't as at be because been before being below
between both but by can cannot could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is isn't it its itself let me more most my
myself no nor not of off on once only or other ought our ours ourselves out over own same she should so
some such than that the their theirs them themselves then there these they this those through to too under
until up very was we were what when where which while who whom why will with would you your yours yourself
yourselves s t
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
