"""Providers: where Ray clusters run. One typed interface, one implementation per cloud kind."""
