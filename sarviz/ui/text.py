"""User text inside Streamlit messages, shown as the characters typed — never as markdown.

``st.error/warning/info/success/caption/toast`` and widget labels always render markdown,
including Streamlit's own syntax (``:red[…]``, ``:material/…:``, emoji shortcodes, ``$…$``
maths) and GitHub's bare-URL links. A study code typed into a link as
``x ![](http://…/p.png) [**Session expired – click here**](http://…/phish)`` was shown as a
tracking pixel and a phishing link on the study's own domain.

:func:`plain` is the one escaper: every message part that carries user input (quiz codes,
invite tokens, uploaded names, typed paths, prompts, place names — and library messages, which
quote them) goes through it. Our own markdown around it stays markdown.
"""

from __future__ import annotations

import re

#: CommonMark lets a backslash escape any ASCII punctuation character: the character is then
#: literal text. Escaped: what makes markup anywhere in a line — code, emphasis, links and
#: images (``[``), HTML and autolinks (``<``), strikethrough, maths (``$``), Streamlit's
#: ``:directives[]``, entities (``&``) and e-mail autolinks (``@``). Characters that only act
#: at the start of a line (``#``, ``>``, ``-``, ``1.``) are escaped there (line breaks become
#: spaces, so that is the start of the text); the rest stay as typed, so a file name reads
#: ``huge.tif`` in the page's source too.
_ESCAPE = {ord(c): "\\" + c for c in "\\`*_[]<>~$&@|{}"}
# Streamlit's emoji shortcodes (``:smile:``) and icons (``:material/x:``) are looked up in the
# text after markdown is parsed, where an escaped colon is a colon again: a zero-width space
# after every colon keeps the text looking the same while no shortcode can match (and
# "http:" can no longer start a bare-URL link).
_ESCAPE[ord(":")] = "\\:\u200b"
# line breaks would start new blocks (headings, lists, quotes): one line
_ESCAPE.update({ord("\n"): " ", ord("\r"): " ", ord("\t"): " "})
_LINE_START = re.compile(r"^(\s*)([#>+=|-]|\d+[.)])")
_WWW = re.compile(r"(?i)\b(www)\.")  # GitHub's bare "www." links


def plain(text: object, limit: int = 500) -> str:
    """``text`` (e.g. what a user typed, or a message quoting it) as literal text in markdown.

    Long input is cut at ``limit`` characters (an error box is not a place for pages of text).
    """
    raw = str(text)
    if len(raw) > limit:
        raw = raw[:limit] + "…"
    raw = "".join(c for c in raw if c in "\n\r\t" or (ord(c) >= 32 and c != "\x7f"))
    out = _WWW.sub(r"\1\\.", raw.translate(_ESCAPE))
    return _LINE_START.sub(
        lambda m: (
            m.group(1) + "\\" + m.group(2)
            if not m.group(2)[0].isdigit()
            else m.group(1) + m.group(2)[:-1] + "\\" + m.group(2)[-1]
        ),
        out,
    )


_UNESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


def shown(markdown_text: str) -> str:
    """What a reader sees of a :func:`plain`-escaped message (its escapes and zero-width spaces
    removed): for tests and logs that compare a message with the text it quotes."""
    return _UNESCAPE.sub(r"\1", str(markdown_text)).replace("\u200b", "")
