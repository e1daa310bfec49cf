"""A Docker engine of the tests' own (Debian trixie's dockerd), and the images it runs, built here.

engine.py starts and stops the engine; images.py builds the images, cached by their inputs;
`python -m harness.docker_rig up|down|images` does the same by hand (docs in its module).
"""
