/* trustlive: small hand-written modules; htmx does most of the work. */
