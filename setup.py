from configparser import ConfigParser
import setuptools, shlex

# note: all settings are in settings.ini; edit there, not here
config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

cfg_keys = 'version description keywords author author_email'.split()
expected = cfg_keys + "lib_name user branch license status min_python audience language".split()
for o in expected: assert o in cfg, "missing expected setting: {}".format(o)
setup_cfg = {o:cfg[o] for o in cfg_keys}

# SPDX license expressions (setuptools deprecates the `License ::` classifiers in favour of these)
licenses = {'apache2': 'Apache-2.0', 'mit': 'MIT', 'gpl2': 'GPL-2.0-only', 'gpl3': 'GPL-3.0-only', 'bsd3': 'BSD-3-Clause'}
statuses = [ '1 - Planning', '2 - Pre-Alpha', '3 - Alpha',
    '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive' ]
py_versions = '3.11 3.12 3.13'.split()

requirements = shlex.split(cfg.get('requirements', ''))
if cfg.get('pip_requirements'): requirements += shlex.split(cfg.get('pip_requirements', ''))
min_python = cfg['min_python']
# extras: every `<name>_requirements` key of settings.ini other than `requirements` and `pip_requirements`
# (batch_requirements -> pip install "kwanzaa[batch]", dev_requirements -> "kwanzaa[dev]")
extras = {k[:-len('_requirements')]: shlex.split(cfg[k] or '') for k in cfg
          if k.endswith('_requirements') and k not in ('requirements', 'pip_requirements')}

setuptools.setup(
    name = cfg['lib_name'],
    license = licenses.get(cfg['license'].lower(), cfg['license']),
    classifiers = [
        'Development Status :: ' + statuses[int(cfg['status'])],
        'Intended Audience :: ' + cfg['audience'].title(),
        'Natural Language :: ' + cfg['language'].title(),
    ] + ['Programming Language :: Python :: '+o for o in py_versions[py_versions.index(min_python):]],
    url = cfg['git_url'],
    # the data folders (presets, schemas, corpus_data, datasets, templates, accelerate) hold no __init__.py: listing
    # them as (namespace) packages ships their files without setuptools' "would be ignored" warnings
    packages = setuptools.find_namespace_packages(include=[cfg['lib_name'], cfg['lib_name'] + '.*'], exclude=['*.__pycache__']),
    include_package_data = True,
    package_data = {cfg['lib_name']: ['presets/*.yaml', 'schemas/*.json', 'corpus_data/*', 'corpus_data/**/*',
                                      'datasets/*', 'datasets/specs/*', 'templates/*', 'accelerate/*', 'rankers/*']},
    install_requires = requirements,
    extras_require = extras,
    dependency_links = cfg.get('dep_links','').split(),
    python_requires  = '>=' + cfg['min_python'],
    long_description = open('README.md', encoding='utf-8').read(),
    long_description_content_type = 'text/markdown',
    zip_safe = False,
    entry_points = {
        'console_scripts': cfg.get('console_scripts','').split(),
        'nbdev': [f'{cfg.get("lib_path")}={cfg.get("lib_path")}._modidx:d']
    },
    **setup_cfg)
