"""The channels: how a message reaches a respondent and how their answer comes back.

A channel only translates. Outbound, it renders the engine's prompts into an outbox payload
and delivers claimed rows through a transport that says sent, retry after, or permanent
failure (`outbox_worker` owns claims, leases, retries, rate limits and the history). Inbound,
it turns an inbox row into engine input or a verdict (bounce, auto-reply, opt-out,
unreadable); `bot.conversation.dispatch` does the rest, the same for every channel.
"""
