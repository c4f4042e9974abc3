def write_wordnet(out, config):
    raise NotImplementedError
