"""Protocol-faithful stand-ins for the systems we do not own (LiveKit, the CRM).

They run as real HTTP servers on 127.0.0.1 (port 0 by default), either inside the
caller's event loop (``async with CrmStandIn() as crm: ...``) or as a separate process
(``python -m tests.standins.crm``), so tests exercise real sockets and real encodings.
"""
