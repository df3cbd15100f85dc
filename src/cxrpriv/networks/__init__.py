"""Network building blocks shared by the stages (backbones; the stages add their own heads)."""
