"""The local web page: is it running, what did it do to my photos, what waits for me, did it work.

A Starlette app rendered on the server (Jinja2) with a little JavaScript and no build step or
CDN. It reads the queue database read-only; its only writes are the three actions on one
file (release, retry, cloak again at a higher mode) and a thumbnail cache in the state
directory. Access needs the run's random token; every action is a POST carrying a CSRF
token from the same origin. Images are addressed by queue id, never by a path.
"""
