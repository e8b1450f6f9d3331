"""One module per benchmark case; each has `async def run(servers, options) -> list[Result]`."""
