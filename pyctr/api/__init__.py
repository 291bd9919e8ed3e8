"""The Docker Engine API front-end (`pyctr system service`): beside `commands/`, calling the same packages.

http.py is the HTTP/1.1 layer (threads, hijacking, chunked bodies and responses), routes.py the version
prefix, route table and error shapes, documents.py the pure JSON <-> pyctr conversions, and one module per
kind of object (containers, execs, images, system) whose handlers parse, call the packages and serialise.
"""
