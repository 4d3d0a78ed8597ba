"""The contact person's desk: answering a respondent's question, closing it, telling the desk.

One rule for every way in: the browser desk, the contact person's email reply and the tests
call the same functions, which write through storage and send only through the outbox.
"""
