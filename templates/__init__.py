"""The built-in templates: installed as the package ``digest.templates`` (see pyproject.toml).

This file makes the folder a regular package, so that an editable install (``pip install -e``)
finds it in the checkout as a wheel install finds it in site-packages; digest/resources.py
loads every template through it. Copy a file to ``$DIGEST_TEMPLATES/<same path>`` to change it.
"""
