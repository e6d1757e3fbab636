"""postroom: a local mail server for people who build and test software that sends email.

The public surface is small: the version, the settings object and (from the testing
package) the in-process server used by test suites.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
