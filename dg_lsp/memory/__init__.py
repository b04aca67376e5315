"""Token memories of what the user already wrote (the open document, other open documents, the
workspace), mixed into every decoding step: ``index`` (longest-suffix matches), ``fusion`` (the
mixing), ``scopes`` (what a request reads), ``workspace`` (the background workspace index)."""
