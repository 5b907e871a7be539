"""The web shell: page layout, policies, security middleware, i18n, error pages."""
