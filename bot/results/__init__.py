"""Results people open: the published figures of a survey and the files they are read in.

`published` joins the suppressed counts (`storage.aggregate`), the weighted estimates
(`estimates`) and the previous wave (`compare`) into one set of figures, and is the only
place that decides what of them may be shown. Every output format (terminal, html, pdf,
xlsx, csv, json) renders those figures and nothing else.
"""
