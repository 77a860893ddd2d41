"""User text inside Streamlit messages, shown as the characters typed — never as markdown.

``st.error/warning/info/success/caption/toast`` and widget labels always render markdown,
including Streamlit's own syntax (``:red[…]``, ``:material/…:``, emoji shortcodes, ``$…$``
maths) and GitHub's bare-URL links. A study code typed into a link as
``x ![](http://…/p.png) [**Session expired – click here**](http://…/phish)`` was shown as a
tracking pixel and a phishing link on the study's own domain (issue 21, item 2).

:func:`plain` is the one escaper: every message part that carries user input (quiz codes,
invite tokens, uploaded names, typed paths, prompts, place names — and library messages, which
quote them) goes through it. Our own markdown around it stays markdown.
"""

from __future__ import annotations

import string

#: CommonMark lets a backslash escape any ASCII punctuation character: the character is then
#: literal text (no emphasis, link, image, HTML, code, table, maths or directive syntax)
_ESCAPE = {ord(c): "\\" + c for c in string.punctuation}
# Streamlit's emoji shortcodes (``:smile:``) and icons (``:material/x:``) are looked up in the
# text after markdown is parsed, where an escaped colon is a colon again: a zero-width space
# after every colon keeps the text looking the same while no shortcode can match.
_ESCAPE[ord(":")] = "\\:\u200b"
# line breaks would start new blocks (headings, lists, quotes): one line
_ESCAPE.update({ord("\n"): " ", ord("\r"): " ", ord("\t"): " "})


def plain(text: object, limit: int = 500) -> str:
    """``text`` (e.g. what a user typed, or a message quoting it) as literal text in markdown.

    Long input is cut at ``limit`` characters (an error box is not a place for pages of text).
    """
    raw = str(text)
    if len(raw) > limit:
        raw = raw[:limit] + "…"
    raw = "".join(c for c in raw if c in "\n\r\t" or (ord(c) >= 32 and c != "\x7f"))
    return raw.translate(_ESCAPE)
